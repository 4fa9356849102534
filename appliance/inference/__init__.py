"""The models in a supervised child process, so a crash or hang in a delegate never takes the page down."""
