"""The `culture` command: parse, call one library function, print. The top of the house;
nothing imports it."""
