"""The Python floor: a handler that does nothing, under the same runtime client."""


def handler(event, context):
    return {"statusCode": 200}
