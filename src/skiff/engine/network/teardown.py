"""Taking slots down: CNI DEL now, in the background, or after a crash.

Every teardown follows one order: under the state lock, the slot's own lock is
taken and its record renamed into work/ (the group's files go with it); then,
outside the state lock, the chain's DEL runs and the record is unlinked. A
crash at any point leaves the record either where it was or in work/ with no
lock holder, and :meth:`Teardown.reap` (run by every new ``Networks``)
finishes it.

A group being deleted need not wait for its DEL (≈ 100 ms here, most of it the
plugins' iptables calls): :meth:`Teardown.retire_later` does the rename at
once (≈ 1 ms, the group has no network any more) and hands the slot, its lock
still held, to one background thread, which finishes teardowns in order (CNI
DELs take the iptables lock anyway). :meth:`Teardown.settle` waits for them.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import fcntl
import logging
import os
import shutil
from pathlib import Path

from skiff.engine.locking import locked
from skiff.engine.network.cni import Slot, read_slot
from skiff.engine.network.slots import Slots
from skiff.errors import SkiffError

_log = logging.getLogger(__name__)


class Teardown:
    """Destroys slots through work/; finishes what a crash left there. Thread safe."""

    def __init__(self, slots: Slots) -> None:
        self._slots = slots
        self._layout = slots.layout
        self._retirer = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="skiff-netns-retire")

    def retire(self, path: Path, group_dir: Path | None = None) -> bool:
        """Destroy the slot recorded at ``path`` (pool or group; ``group_dir`` goes
        too); False if there is none. The record moves to work/ first, under the
        slot's lock, so a crash midway is finished by the next clean-up."""
        with contextlib.ExitStack() as stack:
            with locked(self._layout.state_lock):
                slot = read_slot(path)
                if slot is None:
                    if group_dir is not None:
                        shutil.rmtree(group_dir, ignore_errors=True)
                    return False
                lock = self._layout.lock_path(slot.id)
                stack.enter_context(locked(lock))
                record = self._layout.in_work(slot.id)
                os.rename(path, record)
                if group_dir is not None:
                    shutil.rmtree(group_dir)
            self._slots.destroy(slot)
            record.unlink()
            lock.unlink(missing_ok=True)
        return True

    def retire_later(self, group_dir: Path) -> None:
        """Move the group's slot to work/ now (the group has no network once this
        returns) and destroy it in the background."""
        with locked(self._layout.state_lock):
            slot = read_slot(group_dir / "cni.json")
            if slot is None:
                shutil.rmtree(group_dir, ignore_errors=True)
                return
            # Locked here, unlocked by the retiring thread: flock belongs to the open
            # file, not the thread, so the lock is held across the hand-over.
            fd = os.open(self._layout.lock_path(slot.id),
                         os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)
            record = self._layout.in_work(slot.id)
            os.rename(group_dir / "cni.json", record)
            shutil.rmtree(group_dir)
        try:
            self._retirer.submit(self._finish_retire, slot, record, fd)
        except RuntimeError:  # closed: do it here
            self._finish_retire(slot, record, fd)

    def _finish_retire(self, slot: Slot, record: Path, fd: int) -> None:
        try:
            self._slots.destroy(slot)
            record.unlink()
            self._layout.lock_path(slot.id).unlink(missing_ok=True)
        except (SkiffError, OSError) as exc:
            _log.warning("slot %s stays for the next clean-up: %s", slot.id, exc)
        finally:
            os.close(fd)

    def settle(self) -> None:
        """Wait until the slots handed to :meth:`retire_later` are gone."""
        with contextlib.suppress(RuntimeError):  # closed: close() waited for them
            self._retirer.submit(lambda: None).result()

    def reap(self) -> None:
        """Destroy the slots in work/ that nobody is working on: a crash left them."""
        work = self._layout.work
        for name in os.listdir(work):
            if not name.endswith(".json"):
                continue
            slot_id, record = name.removesuffix(".json"), work / name
            lock = self._layout.lock_path(slot_id)
            with locked(lock, blocking=False) as mine:
                if not mine:
                    continue  # being made or destroyed right now
                try:
                    slot = read_slot(record)
                    if slot is not None:
                        self._slots.destroy(slot)
                        record.unlink()
                except (SkiffError, OSError) as exc:
                    _log.warning("cannot clean up network slot %s yet: %s", slot_id, exc)
                    continue
                lock.unlink(missing_ok=True)

    def close(self) -> None:
        """Finish the background teardowns; later ones run in the caller's thread."""
        self._retirer.shutdown(wait=True)
