"""``full``: heads project onto all of lm_head's rows (the paper; one projection costs as much as lm_head)."""

from eebench.heads.readouts import ReadoutType, register

register(ReadoutType("full", rows=lambda tokens, vocab, options: None, description=__doc__))
