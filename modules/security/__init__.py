"""What keeps the app closed to strangers: the route guard and Gradio's private file folder."""
