from superpose.cli import app

app(prog_name="superpose")
