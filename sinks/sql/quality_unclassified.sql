-- quality (unclassified): the most frequent raw utm_source / utm_medium pairs of
-- touches the taxonomy left unclassified (channel Unknown or Unclassified): the
-- rules a taxonomy update should add first.
SELECT utm_source, utm_medium, count() AS touches
FROM {db}.touches_dedup
WHERE channel IN ('Unknown', 'Unclassified')
GROUP BY utm_source, utm_medium
ORDER BY touches DESC, utm_source, utm_medium
LIMIT {top:UInt32}
