//! Population-based training (Jaderberg et al., 2017), asynchronous: the study's trials are the
//! population; every `interval` steps a member compares its last reported value with the
//! others'. One in the bottom `fraction` copies the checkpoint of a member in the top
//! `fraction` ("exploit") and perturbs that member's parameters ("explore"): each one is
//! multiplied by a factor on its own scale (`1 - x` scaled for `reverse_log`), moved to a
//! neighbouring choice, or, with probability `resample`, drawn afresh from its distribution.
//! The new values reach the member through the live-change path, recorded as asked by `pbt`, and
//! the member's lineage is kept in its `pbt_exploits` user attribute.
//!
//! With `screen = N`, N members start and, once each has reported once, only the best
//! `population` of them go on; the rest stop as pruned. A larger first population costs one
//! report's training each and gives PBT more starting points to copy from.
//!
//! ```
//! use caviar_core::space::{Distribution, ParamValue, Scale};
//! use caviar_engine::pbt::perturb;
//! let beta = Distribution::float(0.9, 0.999, Scale::ReverseLog).unwrap();
//! // 1 - 0.99 = 0.01, times 1.2: 0.012, so 0.988.
//! let v = perturb(&beta, &ParamValue::Float(0.99), 1.2).as_f64().unwrap();
//! assert!((v - 0.988).abs() < 1e-12);
//! ```

use caviar_core::rng::{stable_hash, Rng};
use caviar_core::space::{Distribution, ParamValue, Scale};
use caviar_core::storage::{AttrOwner, NewParamChange, Storage, StudyRecord};
use caviar_core::study::{Trial, TrialError};
use caviar_core::trial::{Direction, FrozenTrial, TrialState};
use serde::{Deserialize, Serialize};

/// Who the record names as asking for PBT's changes.
pub const PBT_ASKER: &str = "pbt";

/// The user attribute that lists a member's exploits: `[{"step", "from"}, ...]`.
pub const PBT_LINEAGE: &str = "pbt_exploits";

/// The `[pbt]` table of a study file.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PbtSpec {
    /// Members that train to the end.
    pub population: usize,
    /// Members started (the study's trials), when more than `population`: after their first
    /// report only the best `population` go on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub screen: Option<usize>,
    /// Steps between a member's decisions.
    pub interval: u64,
    /// The share of members that counts as bottom (copies) and as top (is copied).
    #[serde(default = "default_fraction")]
    pub fraction: f64,
    /// Factors a perturbed parameter is multiplied by, one drawn per parameter.
    #[serde(default = "default_factors")]
    pub perturb: Vec<f64>,
    /// Probability that a parameter is drawn afresh from its distribution instead.
    #[serde(default = "default_resample")]
    pub resample: f64,
    /// Seed of the choices (donor, factors, resamples).
    #[serde(default)]
    pub seed: u64,
}

fn default_fraction() -> f64 {
    0.25
}
fn default_factors() -> Vec<f64> {
    vec![0.8, 1.2]
}
fn default_resample() -> f64 {
    0.25
}

impl PbtSpec {
    /// The members started: the study's trials and workers.
    pub fn members(&self) -> usize {
        self.screen.unwrap_or(self.population)
    }

    /// Checks the settings; the error names the key and the fix.
    pub fn validate(&self) -> Result<(), String> {
        if self.population < 2 {
            return Err(format!(
                "population = {}: PBT needs at least 2 members (4 to 20 is usual)",
                self.population
            ));
        }
        if let Some(screen) = self.screen {
            if screen <= self.population {
                return Err(format!(
                    "screen = {screen}: give more members than population = {} (the first report keeps the best {}), or leave screen out",
                    self.population, self.population
                ));
            }
        }
        if self.interval == 0 {
            return Err("interval = 0: give the steps (epochs) between decisions, e.g. 2".into());
        }
        if !(self.fraction > 0.0 && self.fraction <= 0.5) {
            return Err(format!(
                "fraction = {}: give the share of bottom and top members, above 0 and at most 0.5 (e.g. 0.25)",
                self.fraction
            ));
        }
        if self.perturb.is_empty() || self.perturb.iter().any(|f| !(f.is_finite() && *f > 0.0)) {
            return Err(format!(
                "perturb = {:?}: give positive factors, e.g. [0.8, 1.2]",
                self.perturb
            ));
        }
        if !(0.0..=1.0).contains(&self.resample) {
            return Err(format!(
                "resample = {}: give a probability from 0 to 1 (e.g. 0.25)",
                self.resample
            ));
        }
        Ok(())
    }
}

/// `value` of `dist` moved by `factor` on the parameter's own scale, kept inside the
/// distribution: linear and log values are multiplied, `reverse_log` values have `1 - x`
/// multiplied, integers are multiplied and rounded (moving at least one step), categorical
/// values move to the neighbouring choice (up for a factor above 1).
pub fn perturb(dist: &Distribution, value: &ParamValue, factor: f64) -> ParamValue {
    match dist {
        Distribution::Float {
            low,
            high,
            scale,
            step,
        } => {
            let x = value.as_f64().unwrap_or(*low);
            let moved = match scale {
                Scale::ReverseLog => 1.0 - (1.0 - x) * factor,
                Scale::Linear | Scale::Log => x * factor,
            };
            let clamped = ParamValue::Float(moved.clamp(*low, *high));
            match step {
                // Onto the grid.
                Some(_) => dist
                    .to_unit(&clamped)
                    .map(|u| dist.from_unit(u))
                    .unwrap_or(clamped),
                None => clamped,
            }
        }
        Distribution::Int {
            low, high, step, ..
        } => {
            let x = value.as_f64().unwrap_or(*low as f64);
            let mut moved = (x * factor / *step as f64).round() as i64 * step;
            let current = x as i64;
            if moved == current && factor != 1.0 {
                moved = if factor > 1.0 {
                    current + step
                } else {
                    current - step
                };
            }
            ParamValue::Int(moved.clamp(*low, *high))
        }
        Distribution::Categorical { choices } => {
            let at = choices.iter().position(|c| c == value).unwrap_or(0);
            let next = if factor > 1.0 {
                (at + 1).min(choices.len() - 1)
            } else if factor < 1.0 {
                at.saturating_sub(1)
            } else {
                at
            };
            choices[next].clone()
        }
    }
}

/// What a member does at a decision step.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Train on as it is.
    Keep,
    /// Stop: the screen kept better members (the trial ends as pruned).
    Stop,
    /// Copy member `from`'s checkpoint and go on with `params` (its parameters, explored).
    Exploit {
        /// The donor's trial number.
        from: u64,
        /// The new values of every parameter that changes.
        params: Vec<(String, ParamValue)>,
    },
}

/// The last value a trial reported, when finite.
fn last_value(t: &FrozenTrial) -> Option<f64> {
    t.last_intermediate()
        .map(|(_, v)| v)
        .filter(|v| v.is_finite())
}

/// Decides for member `me` (which has just reported `value` at `step`) among `members` (the
/// study's trials; the running and complete ones with a report count).
pub fn decide(
    spec: &PbtSpec,
    direction: Direction,
    me: &FrozenTrial,
    value: f64,
    step: u64,
    members: &[FrozenTrial],
) -> Decision {
    match choose(spec, direction, me, value, step, members) {
        Choice::Decided(decision) => decision,
        Choice::WaitForDonors => Decision::Keep,
    }
}

/// A decision, or: `me` belongs in the bottom but every top member still runs behind it.
enum Choice {
    Decided(Decision),
    WaitForDonors,
}

/// Whether member `me`, at its first report (`value`), is screened out: `Some(true)` when the
/// best `population` of the members' first reports leave it out, `Some(false)` when they keep
/// it, `None` while a running member has not reported yet (its value could change the cut).
/// Without `screen`, or past the first report, nobody is screened out.
pub fn screened_out(
    spec: &PbtSpec,
    direction: Direction,
    me: &FrozenTrial,
    value: f64,
    members: &[FrozenTrial],
) -> Option<bool> {
    if spec.screen.is_none() || me.intermediate.len() > 1 {
        return Some(false);
    }
    let mut firsts = Vec::with_capacity(members.len());
    // A failed member (lost with its worker, say) is out of the race, whatever it reported.
    for t in members
        .iter()
        .filter(|t| t.number != me.number && t.state != TrialState::Failed)
    {
        match t.intermediate.first() {
            Some(&(_, v)) => firsts.push(v),
            None if t.state == TrialState::Running => return None,
            None => {}
        }
    }
    Some(!in_best(value, &firsts, spec.population, direction))
}

/// Whether `value` is among the best `keep` of `others` and itself (a value that is no number
/// ranks last; a tie keeps it).
fn in_best(value: f64, others: &[f64], keep: usize, direction: Direction) -> bool {
    let worst = match direction {
        Direction::Maximize => f64::NEG_INFINITY,
        Direction::Minimize => f64::INFINITY,
    };
    let finite = |v: f64| if v.is_finite() { v } else { worst };
    let value = finite(value);
    let better = others
        .iter()
        .filter(|&&v| direction.cmp_best_first(finite(v), value) == std::cmp::Ordering::Less)
        .count();
    better < keep
}

/// Milliseconds since the Unix epoch, as trials' start times are stored.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// How long a bottom member waits for a top member to train as far as it has.
const DONOR_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

fn choose(
    spec: &PbtSpec,
    direction: Direction,
    me: &FrozenTrial,
    value: f64,
    step: u64,
    members: &[FrozenTrial],
) -> Choice {
    use Choice::Decided;
    let mut ranked: Vec<(f64, &FrozenTrial)> = members
        .iter()
        .filter(|t| t.number != me.number)
        .filter(|t| matches!(t.state, TrialState::Running | TrialState::Complete))
        .filter_map(|t| Some((last_value(t)?, t)))
        .collect();
    // A value that is no number (diverged training) ranks last.
    let value = match (value.is_finite(), direction) {
        (true, _) => value,
        (false, Direction::Maximize) => f64::NEG_INFINITY,
        (false, Direction::Minimize) => f64::INFINITY,
    };
    ranked.push((value, me));
    if ranked.len() < 2 {
        return Decided(Decision::Keep);
    }
    // Best first.
    ranked.sort_by(|a, b| match direction {
        Direction::Minimize => a.0.total_cmp(&b.0),
        Direction::Maximize => b.0.total_cmp(&a.0),
    });
    let k = ((spec.fraction * ranked.len() as f64).ceil() as usize).clamp(1, ranked.len() / 2);
    let my_rank = ranked
        .iter()
        .position(|(_, t)| t.number == me.number)
        .expect("me is ranked");
    if my_rank < ranked.len() - k {
        return Decided(Decision::Keep);
    }
    // Donors among the top that have trained at least as far, so an exploit never repeats
    // epochs (the budget stays what the study file says).
    let donors: Vec<&FrozenTrial> = ranked[..k]
        .iter()
        .map(|(_, t)| *t)
        .filter(|t| t.number != me.number)
        .filter(|t| t.last_intermediate().is_some_and(|(s, _)| s >= step))
        .collect();
    if donors.is_empty() {
        // A running top member behind this one may catch up: worth a short wait, since
        // members that train at the same pace otherwise rarely find one ready.
        let catching_up = ranked[..k]
            .iter()
            .any(|(_, t)| t.number != me.number && t.state == TrialState::Running);
        return if catching_up {
            Choice::WaitForDonors
        } else {
            Decided(Decision::Keep)
        };
    }
    let mut rng = Rng::keyed(spec.seed, &[me.number, step, stable_hash("pbt")]);
    let donor = donors[rng.below(donors.len() as u64) as usize];
    let mut params = Vec::new();
    for (name, value) in &donor.params {
        let Some(dist) = donor.distributions.get(name) else {
            continue;
        };
        let new = if rng.next_f64() < spec.resample {
            dist.from_unit(rng.next_f64())
        } else {
            let factor = spec.perturb[rng.below(spec.perturb.len() as u64) as usize];
            perturb(dist, value, factor)
        };
        if me.params.get(name) != Some(&new) {
            params.push((name.clone(), new));
        }
    }
    Decided(Decision::Exploit {
        from: donor.number,
        params,
    })
}

/// One decision of member `trial` after its report of `value` at `step`, carried out: on an
/// exploit the changes are recorded as asked by [`PBT_ASKER`] (and, with `apply_now`, applied
/// at `step`; a command applies them when it acknowledges them), and the exploit is appended to
/// the member's [`PBT_LINEAGE`]. On [`Decision::Exploit`] the front end then loads the donor's
/// checkpoint. A bottom member whose top members all run behind it waits (up to 30 s) for one
/// to train as far.
pub fn step(
    spec: &PbtSpec,
    storage: &dyn Storage,
    study: &StudyRecord,
    trial: &mut Trial,
    step: u64,
    value: f64,
    apply_now: bool,
) -> Result<Decision, TrialError> {
    if spec.screen.is_some() && trial.reported().len() == 1 {
        let waiting_since = std::time::Instant::now();
        loop {
            let members = storage.trials(study.id)?;
            let Some(me) = members.iter().find(|t| t.id == trial.id()) else {
                return Ok(Decision::Keep);
            };
            // Every member started together, so the others' first reports come about as long
            // after the start as this one's did: wait up to twice that (at least the donor
            // wait).
            let took = me.started_ms.map_or(0, |ms| (now_ms() - ms).max(0) as u64);
            let limit = DONOR_WAIT.max(2 * std::time::Duration::from_millis(took));
            match screened_out(spec, study.direction, me, value, &members) {
                Some(true) => return Ok(Decision::Stop),
                Some(false) => break,
                // Decided with the reports there are: a member that never reports should not
                // hold the others.
                None if waiting_since.elapsed() >= limit => {
                    let firsts: Vec<f64> = members
                        .iter()
                        .filter(|t| t.number != me.number && t.state != TrialState::Failed)
                        .filter_map(|t| t.intermediate.first().map(|&(_, v)| v))
                        .collect();
                    // The cut scaled to the members that reported.
                    let keep = (spec.population * (firsts.len() + 1))
                        .div_ceil(spec.members())
                        .max(1);
                    if !in_best(value, &firsts, keep, study.direction) {
                        return Ok(Decision::Stop);
                    }
                    break;
                }
                None => std::thread::sleep(std::time::Duration::from_millis(100)),
            }
        }
    }
    if step == 0 || step % spec.interval != 0 {
        return Ok(Decision::Keep);
    }
    let until = std::time::Instant::now() + DONOR_WAIT;
    let (from, params) = loop {
        let members = storage.trials(study.id)?;
        let Some(me) = members.iter().find(|t| t.id == trial.id()) else {
            return Ok(Decision::Keep);
        };
        match choose(spec, study.direction, me, value, step, &members) {
            Choice::Decided(Decision::Exploit { from, params }) => break (from, params),
            Choice::WaitForDonors if std::time::Instant::now() < until => {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            _ => return Ok(Decision::Keep),
        }
    };
    let note = format!("exploit trial {from} at step {step}");
    for (name, value) in &params {
        storage.ask_param_change(
            trial.id(),
            &NewParamChange {
                name: name.clone(),
                value: value.clone(),
                who: PBT_ASKER.into(),
                note: Some(note.clone()),
                forced: false,
            },
        )?;
    }
    if apply_now {
        trial.apply_param_changes(step)?;
    }
    let owner = AttrOwner::Trial(trial.id());
    let mut lineage = storage
        .user_attrs(owner)?
        .remove(PBT_LINEAGE)
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default();
    lineage.push(serde_json::json!({"step": step, "from": from}));
    storage.set_user_attr(owner, PBT_LINEAGE, &serde_json::Value::Array(lineage))?;
    Ok(Decision::Exploit { from, params })
}

#[cfg(test)]
mod tests {
    use super::*;
    use caviar_core::trial::TrialId;

    fn member(number: u64, lr: f64, last: f64) -> FrozenTrial {
        let dist = Distribution::float(1e-4, 1.0, Scale::Log).unwrap();
        FrozenTrial {
            id: TrialId(number as i64 + 1),
            number,
            state: TrialState::Running,
            params: [("lr".to_string(), ParamValue::Float(lr))].into(),
            distributions: [("lr".to_string(), dist)].into(),
            intermediate: vec![(4, last)],
            value: None,
            error: None,
            worker: None,
            started_ms: None,
            finished_ms: None,
            constraints: Vec::new(),
            values: Vec::new(),
        }
    }

    fn spec() -> PbtSpec {
        PbtSpec {
            population: 4,
            screen: None,
            interval: 2,
            fraction: 0.25,
            perturb: vec![0.8, 1.2],
            resample: 0.0,
            seed: 3,
        }
    }

    #[test]
    fn the_worst_member_copies_the_best_and_perturbs_its_values_the_best_keeps() {
        let members = vec![
            member(0, 0.01, 0.9),
            member(1, 0.1, 0.5),
            member(2, 0.001, 0.7),
            member(3, 0.3, 0.2),
        ];
        let spec = spec();
        for m in &members[..3] {
            let value = last_value(m).unwrap();
            assert_eq!(
                decide(&spec, Direction::Maximize, m, value, 4, &members),
                Decision::Keep,
                "member {}",
                m.number
            );
        }
        let Decision::Exploit { from, params } =
            decide(&spec, Direction::Maximize, &members[3], 0.2, 4, &members)
        else {
            panic!("the worst member exploits");
        };
        assert_eq!(from, 0);
        let lr = params[0].1.as_f64().unwrap();
        assert!(
            (lr - 0.008).abs() < 1e-12 || (lr - 0.012).abs() < 1e-12,
            "{lr}"
        );
        // The same seed decides the same.
        assert_eq!(
            decide(&spec, Direction::Maximize, &members[3], 0.2, 4, &members),
            Decision::Exploit { from, params }
        );
    }

    #[test]
    fn a_member_whose_value_is_no_number_ranks_last_and_copies_a_member_as_far_along() {
        let members = vec![
            member(0, 0.01, 0.9),
            member(1, 0.1, 0.5),
            member(2, 0.9, f64::NAN),
        ];
        let Decision::Exploit { from, .. } = decide(
            &spec(),
            Direction::Maximize,
            &members[2],
            f64::NAN,
            3,
            &members,
        ) else {
            panic!("a diverged member is replaced");
        };
        assert_eq!(from, 0);
        // No member has trained as far: nothing to copy.
        assert_eq!(
            decide(
                &spec(),
                Direction::Maximize,
                &members[2],
                f64::NAN,
                5,
                &members
            ),
            Decision::Keep
        );
    }

    #[test]
    fn the_screen_waits_for_every_first_report_then_keeps_the_best_population() {
        let spec = PbtSpec {
            population: 2,
            screen: Some(4),
            ..spec()
        };
        let mut members = vec![
            member(0, 0.01, 0.9),
            member(1, 0.1, 0.5),
            member(2, 0.001, 0.7),
            member(3, 0.3, 0.2),
        ];
        for m in &mut members {
            m.intermediate = vec![(1, m.intermediate[0].1)];
        }
        let cut = |me: &FrozenTrial, members: &[FrozenTrial]| {
            screened_out(
                &spec,
                Direction::Maximize,
                me,
                me.intermediate[0].1,
                members,
            )
        };
        let kept: Vec<Option<bool>> = members.iter().map(|m| cut(m, &members)).collect();
        assert_eq!(kept, [Some(false), Some(true), Some(false), Some(true)]);
        // A running member without a report could still change the cut: wait for it.
        let mut waiting = members.clone();
        waiting[3].intermediate.clear();
        assert_eq!(cut(&waiting[1], &waiting), None);
        // One that ended without a report does not count.
        waiting[3].state = TrialState::Failed;
        assert_eq!(cut(&waiting[2], &waiting), Some(false));
        assert_eq!(cut(&waiting[1], &waiting), Some(true));
        // Nor one that failed after its report: the one it outranked goes on.
        let mut lost = members.clone();
        lost[0].state = TrialState::Failed;
        assert_eq!(cut(&lost[1], &lost), Some(false));
        // A diverged member ranks last; past the first report nobody is cut; nor without a
        // screen.
        members[0].intermediate = vec![(1, f64::NAN)];
        assert_eq!(cut(&members[0], &members), Some(true));
        members[3].intermediate.push((2, 0.1));
        assert_eq!(cut(&members[3], &members), Some(false));
        assert_eq!(
            screened_out(
                &super::tests::spec(),
                Direction::Maximize,
                &members[1],
                0.5,
                &members
            ),
            Some(false)
        );
    }

    #[test]
    fn every_explored_value_lies_in_its_distribution() {
        let dists = [
            Distribution::float(1e-4, 1.0, Scale::Log).unwrap(),
            Distribution::float(0.9, 0.999, Scale::ReverseLog).unwrap(),
            Distribution::float(0.0, 0.5, Scale::Linear).unwrap(),
            Distribution::int(2, 9, Scale::Linear).unwrap(),
            Distribution::Categorical {
                choices: vec![
                    ParamValue::Int(32),
                    ParamValue::Int(64),
                    ParamValue::Int(128),
                ],
            },
        ];
        let mut rng = Rng::new(9);
        for dist in &dists {
            for _ in 0..2000 {
                let value = dist.from_unit(rng.next_f64());
                let factor = [0.5, 0.8, 1.2, 2.0][rng.below(4) as usize];
                let moved = perturb(dist, &value, factor);
                assert!(dist.contains(&moved), "{moved:?} outside {dist:?}");
            }
        }
        // Log values multiply; integers move at least a step; choices move to a neighbour.
        let lr = &dists[0];
        assert_eq!(
            perturb(lr, &ParamValue::Float(0.01), 2.0),
            ParamValue::Float(0.02)
        );
        assert_eq!(
            perturb(&dists[3], &ParamValue::Int(3), 1.2),
            ParamValue::Int(4)
        );
        assert_eq!(
            perturb(&dists[4], &ParamValue::Int(64), 0.8),
            ParamValue::Int(32)
        );
    }
}
