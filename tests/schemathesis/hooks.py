# Loaded by tests/api_schemathesis.rs (SCHEMATHESIS_HOOKS): schemathesis has no serializer for
# application/pdf (the body of POST .../contracts/{ref}/accept); send generated bodies as bytes.
import schemathesis


@schemathesis.serializer("application/pdf")
def pdf(ctx, value):
    if isinstance(value, bytes):
        return value
    return str(value).encode("utf-8")
