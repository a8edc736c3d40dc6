"""The request and response shapes of every API dialect localembed speaks, as typed models.

Each dialect's request is a ``msgspec.Struct`` that validates the JSON body in one pass and
translates itself into one of the service's requests (``localembed.service.execute``); its
response is a Struct too. The same types generate the OpenAPI document, so what is validated,
executed and advertised cannot drift apart. Nothing here knows HTTP: a bad body is an
``InputError`` naming the offending field; the server turns it into each dialect's error shape.
"""
