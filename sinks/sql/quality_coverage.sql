-- quality (taxonomy coverage): per taxonomy version, de-duplicated touches and the
-- share the taxonomy classified (channel neither Unknown nor Unclassified).
SELECT taxonomy_version,
       count() AS touches,
       countIf(channel NOT IN ('Unknown', 'Unclassified')) AS classified,
       if(touches = 0, NULL, classified / touches) AS coverage
FROM {db}.touches_dedup
GROUP BY taxonomy_version
ORDER BY taxonomy_version
