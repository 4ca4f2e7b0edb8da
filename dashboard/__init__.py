"""The dashboard's parts (app.py is the page): the server's shared resources, the address, the class board."""
