"""The published layer's layout: what the writer (`pipeline.publish`) promises and every
reader checks before it trusts a table."""

#: Version of the published tables' layout, written into `meta` and checked on open.
PUBLISHED_LAYOUT = "1"

#: The certainty a principle gap reads when there is no target to compare with.
NO_TARGET = "no target"
#: False discovery rate at which sites are flagged in the published funnels.
FDR = 0.05
