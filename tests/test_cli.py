from convat.cli import main


def test_synth_info_lists_subjects(capsys):
    assert main(["synth", "--profile", "quick"]) == 0
    out = capsys.readouterr().out
    assert "100 clips" in out and "s01" in out
