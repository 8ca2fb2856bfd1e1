import geochips


def test_all_lists_every_public_name_sorted():
    public = [name for name in vars(geochips) if not name.startswith("_")]
    modules = {name for name in public if type(getattr(geochips, name)).__name__ == "module"}
    assert geochips.__all__ == sorted(set(public) - modules)
