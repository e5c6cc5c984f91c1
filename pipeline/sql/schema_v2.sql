-- Store schema, version 2: what the survey form tells a site's respondents.
--
-- Optional per site: who to contact about the survey, and where to get support now
-- (shown on the form and its thank-you page). Sites loaded before keep NULLs.

alter table sites add column contact_email varchar;
alter table sites add column support_text varchar;
alter table sites add column support_url varchar;
