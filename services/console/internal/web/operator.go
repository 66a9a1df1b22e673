package web

import "github.com/gin-gonic/gin"

func (p *Pages) registerOperator(r gin.IRouter) {}
