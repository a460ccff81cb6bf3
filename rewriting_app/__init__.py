"""The Space's page: Gradio panels and events, the hidden API, and each visitor's session."""
