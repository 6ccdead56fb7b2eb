"""The Azure Files data plane: the REST API's subset that ``azure-storage-file-share``
and ``az storage file|directory|share`` use, served path-style
(``https://HOST:PORT/<account>/<share>/<dir>/<file>``, as Azurite serves IP hosts)
over the plain files of each share's root (:class:`skiff.core.shares.FileShares`).

- :mod:`.auth`: SharedKey and SAS signatures, shared by the server and the client.
- :mod:`.paths`: share paths to host paths, never out of the share.
- :mod:`.xml`: bodies (errors, listings).
- :mod:`.app`: the ASGI app; :mod:`.serving`: its own HTTPS listener.
- :mod:`.client`: a small client for the CLI.
"""
