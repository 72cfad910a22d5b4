cwlVersion: v1.2
$namespaces:
  s: https://schema.org/
  calrissian: https://calrissian-cwl.github.io/schema#
s:softwareVersion: 0.1.0
s:name: tilefleet mosaic
s:description: Monthly cloud-free Sentinel-2 median mosaics, tile by tile, as COGs with a STAC collection.

$graph:
  - class: Workflow
    id: main
    label: Monthly cloud-free mosaics
    doc: >
      Searches a STAC API (or a static STAC catalog) for scenes over an area and a date range,
      and writes one median COG per tile and calendar month plus a STAC collection. The
      executor and its resources are inputs: local processes by default, or Dask (a
      LocalCluster, a scheduler address, or a Dask Gateway), Ray, Lithops.
    requirements:
      NetworkAccess:
        networkAccess: true
    inputs:
      stac_url:
        type: string?
        doc: STAC API root URL (give this or catalog)
      catalog:
        type: File?
        doc: >
          Static STAC catalog, collection or item collection (a JSON file). Its relative
          links resolve only where the files beside it are staged too: give catalog_folder
          for such a catalog under a container runner.
      catalog_folder:
        type: Directory?
        doc: A folder holding a static STAC catalog, staged whole (with its relative links)
      catalog_name:
        type: string
        default: collection.json
        doc: With catalog_folder, the catalog's file name in it
      collection:
        type: string?
        doc: Collection id to search, e.g. sentinel-2-l2a
      aoi:
        type: [string, File]
        doc: Area as lon/lat W,S,E,N (a string), or a GeoJSON file (any CRS)
      start_date:
        type: string
        doc: First day, YYYY-MM-DD
      end_date:
        type: string
        doc: Last day, YYYY-MM-DD (inclusive)
      bands:
        type: string[]
        default: [red, green, blue]
        doc: Bands by asset key or eo:bands (common) name
      max_cloud_cover:
        type: float?
        doc: Keep scenes with eo:cloud_cover at most this (%)
      max_items:
        type: int?
      resolution:
        type: float
        default: 10
        doc: Pixel size in metres
      crs:
        type: string?
        doc: One CRS for all tiles (default UTM per zone)
      tile_size:
        type: float?
        doc: Tile side in metres (default 2048 pixels)
      visual:
        type: boolean
        default: false
        doc: Also write an 8-bit RGBA rendering of the first three bands
      executor:
        type: string
        default: local
        doc: local, dask, ray or lithops
      workers:
        type: int
        default: 2
        doc: Parallel workers (processes here, or Dask workers of a new cluster)
      scheduler:
        type: string?
        doc: "dask: address of a running scheduler (tcp://...)"
      gateway:
        type: string?
        doc: "dask: Dask Gateway URL"
      mem:
        type: int?
        doc: Memory per task in MB
    outputs:
      stac_catalog:
        type: Directory
        doc: The mosaics, with catalog.json (the root catalog) and collection.json
        outputSource: mosaic/mosaics
      run_record:
        type: Directory
        outputSource: mosaic/run
    steps:
      mosaic:
        run: "#tilefleet-mosaic"
        in:
          stac_url: stac_url
          catalog: catalog
          catalog_folder: catalog_folder
          catalog_name: catalog_name
          collection: collection
          aoi: aoi
          start_date: start_date
          end_date: end_date
          bands: bands
          max_cloud_cover: max_cloud_cover
          max_items: max_items
          resolution: resolution
          crs: crs
          tile_size: tile_size
          visual: visual
          executor: executor
          workers: workers
          scheduler: scheduler
          gateway: gateway
          mem: mem
        out: [mosaics, run]

  - class: CommandLineTool
    id: tilefleet-mosaic
    label: tilefleet mosaic
    baseCommand: [tilefleet, mosaic]
    arguments:
      - {prefix: --dest, valueFrom: $(runtime.outdir)/mosaics}
      - {prefix: --run-dir, valueFrom: $(runtime.outdir)/run}
      - --yes
    requirements:
      NetworkAccess:
        networkAccess: true
      ResourceRequirement:
        coresMin: $(inputs.workers)
        ramMin: 4096
    hints:
      # A hint, not a requirement: cwltool refuses a SoftwareRequirement it cannot resolve
      # (no dependency resolver configured), while runners that resolve packages use it.
      SoftwareRequirement:
        packages:
          - package: tilefleet
            version: ["0.1.0"]
      calrissian:DaskGatewayRequirement:
        workerCores: 1
        workerCoresLimit: 1
        workerMemory: 4G
        clusterMaxCore: 16
        clusterMaxMemory: 64G
    inputs:
      stac_url: {type: string?, inputBinding: {prefix: --stac-url}}
      catalog: {type: File?, inputBinding: {prefix: --catalog}}
      catalog_folder:
        type: Directory?
        inputBinding:
          prefix: --catalog
          valueFrom: $(self.path)/$(inputs.catalog_name)
      catalog_name: {type: string}
      collection: {type: string?, inputBinding: {prefix: --collection}}
      aoi: {type: [string, File], inputBinding: {prefix: --aoi}}
      start_date: {type: string, inputBinding: {prefix: --start-date}}
      end_date: {type: string, inputBinding: {prefix: --end-date}}
      bands: {type: "string[]", inputBinding: {prefix: --bands, itemSeparator: ","}}
      max_cloud_cover: {type: float?, inputBinding: {prefix: --max-cloud-cover}}
      max_items: {type: int?, inputBinding: {prefix: --max-items}}
      resolution: {type: float, inputBinding: {prefix: --resolution}}
      crs: {type: string?, inputBinding: {prefix: --crs}}
      tile_size: {type: float?, inputBinding: {prefix: --tile-size}}
      visual: {type: boolean, inputBinding: {prefix: --visual}}
      executor: {type: string, inputBinding: {prefix: --executor}}
      workers: {type: int, inputBinding: {prefix: --workers}}
      scheduler: {type: string?, inputBinding: {prefix: --scheduler}}
      gateway: {type: string?, inputBinding: {prefix: --gateway}}
      mem: {type: int?, inputBinding: {prefix: --mem}}
    outputs:
      mosaics:
        type: Directory
        outputBinding: {glob: mosaics}
      run:
        type: Directory
        outputBinding: {glob: run}
    # 0: every tile-month written; 1: some failed (see run/failed.csv); 2: all failed;
    # 3: invalid job. Only 0 lets the workflow go on.
    successCodes: [0]
    permanentFailCodes: [1, 2, 3]
    temporaryFailCodes: [130]
