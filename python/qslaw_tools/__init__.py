"""Python tooling around the qslaw compiler: references, fixtures, runners."""
