"""The log between the write side and the read side: a relay to a broker, and read services."""
