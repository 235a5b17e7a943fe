"""The embedded Ray's private token: made private, left alone when the user chose one, removed once stale."""

import os
import shutil


def test_the_embedded_rays_token_is_private(monkeypatch):
    """Token auth on, nothing chosen: the token is ours (600 in a 700 folder), never ~/.ray/auth_token (644)."""
    from tune_ae import ray_start

    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", "unset")  # so that monkeypatch restores its absence
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH")
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    folder = ray_start.private_token()
    token = folder / "token"
    assert os.environ["RAY_AUTH_TOKEN_PATH"] == str(token) and len(token.read_text()) == 64
    assert oct(folder.stat().st_mode & 0o777) == "0o700" and oct(token.stat().st_mode & 0o777) == "0o600"
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", "/mine")  # a token the user chose is left alone
    assert ray_start.private_token() is None
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH")
    assert ray_start.private_token() is None
    shutil.rmtree(folder)
    # A sweep with it: test_uri_storage_path_end_to_end_under_the_embedded_rays_own_token.


def test_stale_token_folders_are_removed_and_live_ones_kept(tmp_path, monkeypatch):
    import tempfile

    from tune_ae import ray_start

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    stale = tmp_path / f"{ray_start.TOKEN_PREFIX}4194305-abc"  # above any pid_max: no such process
    live = tmp_path / f"{ray_start.TOKEN_PREFIX}{os.getpid()}-def"
    for folder in (stale, live):
        folder.mkdir()
        (folder / "token").write_text("secret")
    ray_start.remove_stale_tokens()
    assert not stale.exists() and (live / "token").is_file()
