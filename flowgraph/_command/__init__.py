"""_command"""
