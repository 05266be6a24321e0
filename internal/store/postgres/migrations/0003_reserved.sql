-- Version 3 is another change's migration (merged separately); this placeholder only
-- keeps the versions without a gap until it lands, and is then deleted.
SELECT 1;
