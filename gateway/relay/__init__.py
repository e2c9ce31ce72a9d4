"""The gateway's data path: a lean HTTP/1.1 relay on asyncio protocols and httptools.

:mod:`.server` listens (a site of aiohttp's runner), :mod:`.client` reads requests,
:mod:`.exchange` runs one request through the pipeline and the upstream, :mod:`.upstream`
pools upstream connections, :mod:`.heads` reads and writes heads. What the relay does not
handle itself goes to the aiohttp application at a request boundary (see :mod:`.client`).
"""
