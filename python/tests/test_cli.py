"""One world: a study made from Python is an ordinary stored study for the `caviar` command
(installed by the package), its listings, analyses, reports and dashboard."""

import json
import math

import caviar



def tuned(url):
    study = caviar.create_study(
        storage=url,
        study_name="from-python",
        sampler=caviar.samplers.TPESampler(seed=2),
        pruner=caviar.pruners.MedianPruner(n_startup_trials=3),
    )

    def objective(trial):
        lr = trial.suggest_float("lr", 1e-5, 1e-1, log=True)
        units = trial.suggest_int("units", 16, 256, log=True)
        loss = 0.0
        for epoch in range(4):
            loss = (math.log10(lr) + 3) ** 2 + 1.0 / (epoch + 1) + 1e-4 * units
            trial.report(loss, epoch)
            if trial.should_prune():
                raise caviar.TrialPruned()
        return loss

    study.optimize(objective, n_trials=30)
    return study


def test_the_package_installs_the_caviar_command(cli):
    done = cli("--help")
    assert "caviar" in done.stdout and "dashboard" in done.stdout
    assert cli("studies", "--storage", "sqlite:no/such/file.db", check=False).returncode == 2


def test_cli_verbs_read_a_python_study(cli, sqlite_url):
    study = tuned(sqlite_url)
    listed = json.loads(cli("--storage", sqlite_url, "studies", "--json").stdout)
    (entry,) = listed
    assert entry["name"] == "from-python"
    best = json.loads(cli("--storage", sqlite_url, "best", "from-python", "--json", "-k", "1").stdout)
    assert best[0]["number"] == study.best_trial.number
    assert math.isclose(best[0]["value"], study.best_value)
    trials = json.loads(cli("--storage", sqlite_url, "trials", "from-python", "--json").stdout)
    assert len(trials) == 30
    for listed_trial, frozen in zip(trials, study.trials):
        assert {step: v for step, v in listed_trial["intermediate"]} == frozen.intermediate_values
        assert listed_trial["state"] == {"COMPLETE": "complete", "PRUNED": "pruned"}[frozen.state.name]
    assert any(t["state"] == "pruned" for t in trials)
    importance = cli("--storage", sqlite_url, "importance", "from-python")
    assert "lr" in importance.stdout and "units" in importance.stdout
    narrowed = cli("--storage", sqlite_url, "narrow", "from-python")
    assert "lr" in narrowed.stdout


def test_report_and_dashboard_data_of_a_python_study(cli, sqlite_url, tmp_path):
    tuned(sqlite_url)
    out = tmp_path / "report.html"
    cli("--storage", sqlite_url, "report", "from-python", "--out", str(out))
    html = out.read_text()
    assert "from-python" in html and "lr" in html


def test_the_dashboard_serves_a_python_study_with_its_curves_and_attributes(sqlite_url):
    import subprocess
    import urllib.request

    from conftest import caviar_command

    study = caviar.create_study(storage=sqlite_url, study_name="dash")

    def objective(trial):
        x = trial.suggest_float("x", 0, 1)
        trial.report(x, 0)
        trial.report(x / 2, 1)
        trial.set_user_attr("fold", trial.number % 3)
        return x / 2

    study.optimize(objective, n_trials=6)
    server = subprocess.Popen(
        [*caviar_command(), "--storage", sqlite_url, "dashboard", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = server.stdout.readline().split()[-1].rstrip("/")
        get = lambda path: json.loads(urllib.request.urlopen(url + path, timeout=10).read())
        (listed,) = get("/api/studies")["studies"]
        assert listed["name"] == "dash" and listed["trials"] == 6
        best = study.best_trial
        detail = get(f"/api/studies/dash/trials/{best.number}")
        assert detail["intermediate"] == [[0, best.params["x"]], [1, best.params["x"] / 2]]
        assert detail["user_attrs"] == {"fold": best.number % 3}
    finally:
        server.kill()
        server.wait()
