"""The deployable front: everything that speaks a wire protocol (LMTP, milter)."""
