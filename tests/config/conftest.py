# Stations with the tiny model, for the access matrix (units go through the line service).
from tests.inspection.conftest import device_client, make_model_version, make_station, tiny_bundle  # noqa: F401
