-- What the slide file itself says (API.md v1.1 `source`: format, vendor, size, levels,
-- microns per pixel, objective power, channels, compression) and its associated images
-- ({"label": {"key", "mediaType"}, ...}, objects beside the pyramid). NULL for slides
-- tiled before these were read.
ALTER TABLE slides ADD COLUMN source jsonb;
ALTER TABLE slides ADD COLUMN associated jsonb;
