"""``params.yaml`` composed from ``conf/`` exactly as ``dvc exp run`` writes it, with public APIs only.

DVC's Hydra composition (``.dvc/config``, ``[hydra]``) composes the config with Hydra, resolves
interpolations and dumps it with ``OmegaConf.to_yaml``; ``make params`` does the same after a
``conf/`` edit (DVC recomposes only inside ``dvc exp run``), byte for byte
(``tests/unit/common/test_params_file.py`` compares the two).

    python -m s2s.common.params_file [override ...]      # e.g. preset=tiny optim.lr=0.003
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from s2s.common.io import write_text_atomic


def compose_params(config_dir: str | Path, overrides: Sequence[str] = (), config_name: str = "config") -> str:
    """The YAML text of the composed, resolved config (Hydra's compose API, as DVC calls it)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(str(Path(config_dir).resolve()), version_base=None):
        cfg = compose(config_name=config_name, overrides=list(overrides))
    OmegaConf.resolve(cfg)
    return OmegaConf.to_yaml(cfg)


def main(argv: Sequence[str] | None = None) -> None:
    overrides = list(sys.argv[1:] if argv is None else argv)
    write_text_atomic("params.yaml", compose_params("conf", overrides))


if __name__ == "__main__":
    main()
