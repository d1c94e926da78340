from django.test import Client

from tests.conftest import Personas


def client_for(personas: Personas, name: str) -> Client:
    client = Client()
    user = personas.user(name)
    if user is not None:
        client.force_login(user)
    return client
