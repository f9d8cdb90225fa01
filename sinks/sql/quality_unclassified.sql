-- quality (unclassified): the most frequent raw utm_source / utm_medium pairs of
-- touches the taxonomy left unclassified (channel Unknown or Unclassified): the
-- rules a taxonomy update should add first. Each touch counts once, by its latest
-- delivery (touch_quality, migration 0009).
SELECT utm_source, utm_medium, count() AS touches
FROM {db}.touch_quality FINAL
WHERE classified = 0
GROUP BY utm_source, utm_medium
ORDER BY touches DESC, utm_source, utm_medium
LIMIT {top:UInt32}
