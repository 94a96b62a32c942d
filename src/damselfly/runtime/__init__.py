"""The real peer runtime on aiohttp: scheduler service, peer daemon, seed peer, get, mirror."""
