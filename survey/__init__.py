"""The ground floor: the instrument as data, settings, errors, site types, synthetic
responses and the instrument's exports to other survey tools. Imports nothing above it."""
