"""Action plans: what each site chose to do about its gaps, kept across waves.

Not respondent data and not the published layer: a small writable file beside the
accounts file (`Settings.plans_path`), read by the dashboard, the board report and the
command line through `plans.store.ActionBook`.
"""
