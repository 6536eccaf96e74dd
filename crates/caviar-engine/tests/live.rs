//! Live changes asked through the engine: checks and messages shared by every front end.

use std::sync::Arc;

use caviar_core::prelude::*;
use caviar_core::storage::{InMemoryStorage, Storage};
use caviar_engine::{ask_changes, LiveError, NewValue};

fn running_trial(front_end: &str) -> (Arc<dyn Storage>, Study, Trial) {
    let storage: Arc<dyn Storage> = Arc::new(InMemoryStorage::new());
    let study = Study::builder("live")
        .storage(storage.clone())
        .spec(serde_json::json!({"front_end": front_end}))
        .build()
        .unwrap();
    let mut trial = study.ask().unwrap();
    trial.suggest_float("lr", 1e-4, 1.0, Scale::Log).unwrap();
    trial.suggest_int("layers", 1, 4, Scale::Linear).unwrap();
    trial.suggest_categorical("act", &["relu", "tanh"]).unwrap();
    (storage, study, trial)
}

fn text(name: &str, value: &str) -> (String, NewValue) {
    (name.to_string(), NewValue::Text(value.to_string()))
}

#[test]
fn values_are_read_by_type_and_checked_against_their_range() {
    let (storage, study, mut trial) = running_trial("python");
    let record = study.record();
    let ask = |changes: &[(String, NewValue)], force| {
        ask_changes(&*storage, record, 0, changes, "ann@box", Some("why"), force)
    };
    let asked = ask(
        &[text("lr", "0.02"), text("act", "relu"), text("layers", "3")],
        false,
    )
    .unwrap();
    assert_eq!(asked.len(), 3);
    assert_eq!(asked[0].new, ParamValue::Float(0.02));
    assert_eq!(asked[1].new, ParamValue::Str("relu".into()));
    assert_eq!(asked[2].new, ParamValue::Int(3));
    let messages: Vec<String> = [
        ask(&[text("lr", "fast")], false),
        ask(&[text("layers", "2.5")], false),
        ask(&[text("lr", "3")], false),
        ask(&[text("act", "gelu")], false),
        ask(&[text("momentum", "0.9")], false),
    ]
    .into_iter()
    .map(|r| r.unwrap_err().to_string())
    .collect();
    assert!(messages[0].contains("`lr`") && messages[0].contains("not a number"));
    assert!(messages[1].contains("not a whole number"));
    assert!(messages[2].contains("outside float [0.0001, 1] log") && messages[2].contains("force"));
    assert!(messages[3].contains("gelu") && messages[3].contains("outside"));
    assert!(
        messages[4].contains("no parameter `momentum`") && messages[4].contains("act, layers, lr")
    );
    // Forced: recorded as such.
    let forced = ask(&[text("lr", "3")], true).unwrap();
    assert!(forced[0].forced);
    // The trial applies all four at its next report, in order.
    trial.report(1, 0.5).unwrap();
    let applied = trial.apply_param_changes(1).unwrap();
    assert_eq!(applied.len(), 4);
    assert_eq!(trial.params()["lr"], ParamValue::Float(3.0));
    assert_eq!(trial.params()["layers"], ParamValue::Int(3));
    assert_eq!(
        trial.suggest_float("lr", 1e-4, 1.0, Scale::Log).unwrap(),
        3.0,
        "a later suggestion gives the value in effect"
    );
    study.tell(trial, Outcome::Complete(0.5)).unwrap();
    let after = ask(&[text("lr", "0.1")], false).unwrap_err();
    assert!(matches!(after, LiveError::NotRunning { .. }), "{after}");
    assert!(after.is_bad_input());
}

#[test]
fn studies_whose_trials_cannot_take_changes_say_so() {
    let (storage, study, _trial) = running_trial("cli");
    let err = ask_changes(
        &*storage,
        study.record(),
        0,
        &[text("lr", "0.1")],
        "me",
        None,
        false,
    )
    .unwrap_err();
    assert!(matches!(err, LiveError::Unsupported(_)));
    assert!(err.to_string().contains("Python package"), "{err}");
    let (storage, study, _trial) = running_trial("python");
    let err = ask_changes(
        &*storage,
        study.record(),
        7,
        &[text("lr", "0.1")],
        "me",
        None,
        false,
    )
    .unwrap_err();
    assert!(err.to_string().contains("has no trial 7"), "{err}");
}
