"""What the tests share: the emulated account, the sample events, and the flows wired to them."""
