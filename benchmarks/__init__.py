"""Load generator, baseline server and harness behind `just bench`."""
