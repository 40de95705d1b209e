//! The README's commands as a new user on a stock Debian or Ubuntu runs them: Cargo.lock
//! honoured, every `pip install` inside a virtual environment (PEP 668 refuses a bare one
//! there), numpy installed before an example that needs it, and examples that write into a
//! temporary directory, never into the checkout. (`.ci/run` runs the test command itself.)

const README: &str = include_str!("../../README.md");
const PYTHON_README: &str = include_str!("../../python/README.md");

/// Every shell line of the fenced `sh` blocks, without a `$ ` prompt.
fn shell_lines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut inside = false;
    for line in text.lines() {
        if line.starts_with("```") {
            inside = line.trim() == "```sh";
            continue;
        }
        if inside {
            out.push(line.trim_start_matches("$ ").to_string());
        }
    }
    out
}

#[test]
fn cargo_commands_honour_the_lock_file() {
    let lines = shell_lines(README);
    let cargo: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("cargo install") || l.contains("cargo test"))
        .collect();
    assert!(!cargo.is_empty());
    for l in cargo {
        assert!(l.contains("--locked"), "without --locked: {l}");
    }
}

#[test]
fn every_pip_install_is_inside_a_virtual_environment() {
    for text in [README, PYTHON_README] {
        for l in shell_lines(text)
            .iter()
            .filter(|l| l.contains("pip install"))
        {
            // `/venv/bin/pip` or `python -m pip` of a venv's python: never a bare `pip install`
            let venv = l.contains("-venv/bin/pip install") || l.contains("$VENV/bin/python -m pip");
            assert!(venv, "a pip install outside a virtual environment: {l}");
        }
    }
}

#[test]
fn the_npz_example_installs_numpy_first_and_writes_into_a_temporary_directory() {
    let lines = shell_lines(README);
    let first_numpy_use = lines
        .iter()
        .position(|l| l.contains("import numpy"))
        .expect("the .npz example");
    let install = lines
        .iter()
        .position(|l| l.contains("pip install") && l.contains("numpy"))
        .expect("numpy is installed");
    assert!(
        install < first_numpy_use,
        "numpy is used before it is installed"
    );
    for l in lines
        .iter()
        .filter(|l| l.contains(".npz") || l.contains("case.json"))
    {
        let writes = l.contains("np.savez") || l.contains("> ") || l.contains("--output");
        if writes {
            assert!(
                l.contains("$D/"),
                "an example writes into the checkout: {l}"
            );
        }
    }
}
