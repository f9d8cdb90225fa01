-- quality (taxonomy coverage): per taxonomy version, de-duplicated touches and the
-- share the taxonomy classified (channel neither Unknown nor Unclassified). Each touch
-- counts once, by its latest delivery (touch_quality, migration 0009).
SELECT taxonomy_version,
       count() AS touches,
       countIf(classified = 1) AS classified,
       if(touches = 0, NULL, classified / touches) AS coverage
FROM {db}.touch_quality FINAL
GROUP BY taxonomy_version
ORDER BY taxonomy_version
