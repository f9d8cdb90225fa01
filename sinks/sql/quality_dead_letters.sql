-- quality (dead letters): inputs leadstream could not accept, by stage and reason
-- (each dead letter counted once, however often it was delivered).
SELECT stage, reason, uniqExact(event_id) AS count
FROM {db}.dead_letters
GROUP BY stage, reason
ORDER BY count DESC, stage, reason
