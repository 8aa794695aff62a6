from flux_cli.main import run

run()
