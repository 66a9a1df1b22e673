package web

import "github.com/gin-gonic/gin"

func (p *Pages) registerRoles(r gin.IRouter) {}
