"""What is made from the published layer for people outside the dashboard: researchers'
exports and the board report (reads only `published`)."""
