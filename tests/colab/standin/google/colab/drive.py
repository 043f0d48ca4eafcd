"""Stand-in for ``google.colab.drive``: records mounts; the simulated Drive is a folder prepared by the check."""

MOUNTS: list[str] = []


def mount(mountpoint: str, force_remount: bool = False, **kwargs) -> None:
    """Colab mounts the user's Google Drive at ``mountpoint``; the simulation only records the call."""
    MOUNTS.append(mountpoint)
