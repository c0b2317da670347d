"""_draw"""
