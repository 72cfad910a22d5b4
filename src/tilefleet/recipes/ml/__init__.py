"""The machine-learning chain over UTM patches (eo-grow's pipelines as tilefleet recipes).

One module per recipe, run as the steps of a chain (see ``docs/ml-chain.md``):

- :mod:`.patch_data` (``patch-data``): Sentinel-2 bands and SCL from STAC, one Zarr cube
  per patch (time × band × y × x) with a valid mask;
- :mod:`.features` (``features``): normalised-difference indices and bands, per date or
  aggregated over time;
- :mod:`.reference` (``reference``): labels per patch, rasterised from a vector file or
  resampled from a raster;
- :mod:`.sample` (``sample``): seeded pixel samples per patch, as Parquet;
- :mod:`.merge_samples` (``merge-samples``): every patch's samples into train and
  validation tables, streamed;
- :mod:`.train` (``train``): a LightGBM model, its metrics in the run's report;
- :mod:`.predict` (``predict``): the model on every patch, one COG per patch;
- :mod:`.export` (``export``): the predictions of each UTM zone merged into one COG;
- :mod:`.publish` (``publish``): a STAC collection of the zone maps, optionally pushed to
  a STAC API.

Each module imports what only it needs (lightgbm, geopandas) inside its functions, so a
worker running one recipe loads nothing of the others.
"""
