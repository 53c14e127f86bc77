"""tltf.files: a file or folder is written whole or not at all."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tltf import files


def test_write_json_replaces_the_file_and_leaves_nothing_else(tmp_path):
    path = tmp_path / "deep" / "report.json"
    files.write_json(path, {"a": 1})
    files.write_json(path, {"a": 2}, sort_keys=True)

    assert json.loads(path.read_text()) == {"a": 2}
    assert path.read_text().endswith("\n")
    assert sorted(p.name for p in path.parent.iterdir()) == ["report.json"]


def test_failed_write_keeps_the_old_file_and_removes_new_folders(tmp_path):
    old = files.write_text(tmp_path / "run.json", "old")
    with pytest.raises(RuntimeError), files.atomic_path(old) as temp:
        temp.write_text("half")
        raise RuntimeError("interrupted")
    with (
        pytest.raises(RuntimeError),
        files.atomic_path(tmp_path / "a" / "b" / "f") as t,
    ):
        t.write_text("half")
        raise RuntimeError("interrupted")

    assert old.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json"]


def _folder(path: Path, content: str) -> None:
    path.mkdir()
    (path / "file.txt").write_text(content)


def test_folder_policies_replace_keep_and_error(tmp_path):
    target = tmp_path / "export"
    with files.atomic_path(target, directory=True) as temp:
        _folder(temp, "first")
    with files.atomic_path(target, directory=True) as temp:
        _folder(temp, "second")
    assert (target / "file.txt").read_text() == "second"

    with files.atomic_path(target, directory=True, exists="keep") as temp:
        _folder(temp, "third")
    assert (target / "file.txt").read_text() == "second"

    error = files.atomic_path(target, directory=True, exists="error")
    with pytest.raises(FileExistsError), error as temp:
        _folder(temp, "fourth")
    assert (target / "file.txt").read_text() == "second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]


def test_failed_folder_swap_puts_the_old_folder_back(tmp_path, monkeypatch):
    target = tmp_path / "export"
    with files.atomic_path(target, directory=True) as temp:
        _folder(temp, "old")
    rename = Path.rename

    def failing(self, destination):
        if self.parent.name.startswith(".export.tmp-") and self.name == "export":
            raise OSError("disk full")
        return rename(self, destination)

    monkeypatch.setattr(Path, "rename", failing)
    swap = files.atomic_path(target, directory=True)
    with pytest.raises(OSError, match="disk full"), swap as temp:
        _folder(temp, "new")

    assert (target / "file.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]
