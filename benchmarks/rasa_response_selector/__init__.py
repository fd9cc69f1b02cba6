"""Rasa's ResponseSelector trained on the seed knowledge base, as a baseline for the e5 retriever."""
