from eebench.heads.modules import ExitHeads, LinearHead
from eebench.heads.store import load_heads, save_heads

__all__ = ["ExitHeads", "LinearHead", "load_heads", "save_heads"]
