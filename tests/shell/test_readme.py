from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_ci_runs_the_readme_commands_verbatim():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    commands = [line for line in ci.splitlines() if line.startswith("python3 -m venv")]
    assert len(commands) == 2
    # The README opens with the same two commands, in the first code block.
    first_block = readme.split("```bash", 1)[1].split("```", 1)[0]
    for command in commands:
        assert command in first_block
    assert "pytest" in commands[1] and "geochips demo" in commands[0]
