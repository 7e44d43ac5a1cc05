"""The collector's HTTP API: runs, series and the collector's counters over aiohttp."""
