"""Sites: the kinds of organisation a site can be, which define peer groups."""

#: Site types (peer groups): what `culture sites load` accepts and exports label.
SITE_TYPES = ("acute_trust", "professional_support_unit", "independent_support_org",
              "primary_care")
