"""The HTTP/JSON gateway: zkv from any language and any monitor (``zkv-http``; see docs/http.md).

An adapter, not a second server: every request goes through the ordinary :class:`zkv.client.Client`
(smart routing, one hop to a coordinator); nothing here decides anything about data.
"""
