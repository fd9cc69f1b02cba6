"""The rasa-sdk action server: one small action class per job.

Actions reach the database and the knowledge base only through the API's
service endpoints (``api_client``), acting for the merchant whose id came with
the message in Rasa's metadata.
"""
