"""The persona: a member encoder and an item tower in one space (plain nn.Module + Lightning wrapper)."""
