-- How a slide's tiles are stored (slipway/tilestore.py): one archive object with an index,
-- or one object per tile. Slides tiled before this column existed used per-tile objects.
ALTER TABLE slides ADD COLUMN layout text NOT NULL DEFAULT 'files'
    CHECK (layout IN ('archive', 'files'));
